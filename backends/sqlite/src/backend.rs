//! `SqliteCoordinator`: the Coordinator operations as SQLite transactions.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use kingpin_api::{
    check_data_size, check_expected_version, sequential_path, Capabilities, Coordinator, Error,
    ErrorKind, Node, NodePath, Op, OpResult, Result, SessionEvent, SessionEvents, SessionState,
    Stat, WatchKind, WatchStream,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::config::SqliteConfig;
use crate::error::from_sqlite;
use crate::schema::{self, CREATED, DATA_CHANGED, DELETED};
use crate::session::{end_session, keep_alive, now_ms, Shared};
use crate::watch;

/// A session on a shared SQLite database implementing [`Coordinator`].
#[derive(Debug)]
pub struct SqliteCoordinator {
    shared: Arc<Shared>,
}

impl SqliteCoordinator {
    /// Opens (creating if needed) the database and starts a session.
    ///
    /// A database file this process may read but not write (the monitor's
    /// user, when the writer's user owns the file) is opened read-only:
    /// reads and watches work, and every write is `Unauthorized`.
    ///
    /// Errors: `Backend` naming the file when it is corrupt or not a SQLite
    /// database; `Unavailable` when it is locked past the busy timeout or
    /// cannot be opened.
    pub async fn connect(config: SqliteConfig) -> Result<Self> {
        let shared = tokio::task::spawn_blocking(move || Shared::open(config))
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Backend, "opening SQLite failed").with_source(e)
            })??;
        if !shared.read_only {
            tokio::spawn(keep_alive(shared.clone()));
        }
        tokio::spawn(watch::poll(shared.clone()));
        Ok(SqliteCoordinator { shared })
    }

    /// Ends this session as a crash past the session timeout would (its row
    /// and ephemeral nodes are reaped); returns once a new session is in
    /// place. For tests and failure drills.
    pub async fn force_expire(&self) -> Result<()> {
        let session = self.shared.session()?;
        let mut events = self.shared.hub.events();
        self.shared
            .write(move |conn, shared| end_session(conn, shared, session))
            .await?;
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
            .map_err(|_| Error::unavailable("no new SQLite session after expiry"))
    }

    async fn apply(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        let session = self.shared.session()?;
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
        let (results, changed) = self
            .shared
            .write(move |conn, shared| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(|e| from_sqlite(e, shared.path()))?;
                let mut writer = Writer::new(&tx, shared)?;
                let mut results = Vec::with_capacity(ops.len());
                for (index, op) in ops.iter().enumerate() {
                    results.push(
                        writer
                            .apply(op, session)
                            .map_err(|e| e.at_operation(index))?,
                    );
                }
                let changed = writer.finish()?;
                tx.commit().map_err(|e| from_sqlite(e, shared.path()))?;
                Ok((results, changed))
            })
            .await?;
        if changed {
            self.shared.local_change.notify_one();
        }
        Ok(results)
    }
}

impl Drop for SqliteCoordinator {
    fn drop(&mut self) {
        self.shared.shut_down();
    }
}

/// Applies operations inside one write transaction, at one new revision.
struct Writer<'a> {
    tx: &'a Transaction<'a>,
    shared: &'a Shared,
    revision: i64,
    changed: bool,
}

fn row_stat(version: i64, created: i64, modified: i64, owner: Option<i64>) -> Stat {
    Stat {
        version: version as u64,
        created_revision: created as u64,
        modified_revision: modified as u64,
        ephemeral_owner: owner.map(|o| o as u64),
    }
}

impl<'a> Writer<'a> {
    fn new(tx: &'a Transaction<'a>, shared: &'a Shared) -> Result<Self> {
        let revision = schema::meta(tx, "revision").map_err(|e| from_sqlite(e, shared.path()))? + 1;
        Ok(Writer {
            tx,
            shared,
            revision,
            changed: false,
        })
    }

    fn sql<T>(&self, result: rusqlite::Result<T>) -> Result<T> {
        result.map_err(|e| from_sqlite(e, self.shared.path()))
    }

    fn stat(&self, path: &NodePath) -> Result<Option<Stat>> {
        let row = self
            .tx
            .query_row(
                "SELECT version, created_rev, modified_rev, owner FROM nodes WHERE path = ?1",
                [path.as_str()],
                |r| Ok(row_stat(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional();
        self.sql(row)
    }

    fn log(&mut self, path: &NodePath, kind: i64) -> Result<()> {
        self.changed = true;
        let inserted = self.tx.execute(
            "INSERT INTO changes (rev, path, kind) VALUES (?1, ?2, ?3)",
            params![self.revision, path.as_str(), kind],
        );
        self.sql(inserted).map(drop)
    }

    fn insert(&mut self, path: &NodePath, data: &[u8], owner: Option<i64>) -> Result<()> {
        let parent = path.parent().unwrap_or_else(NodePath::root);
        let inserted = self.tx.execute(
            "INSERT INTO nodes (path, parent, data, version, created_rev, modified_rev, owner) VALUES (?1, ?2, ?3, 0, ?4, ?4, ?5)",
            params![path.as_str(), parent.as_str(), data, self.revision, owner],
        );
        self.sql(inserted)?;
        self.log(path, CREATED)
    }

    fn next_sequence(&mut self, parent: &NodePath) -> Result<u64> {
        let sequence = if parent.is_root() {
            let n = self.sql(schema::meta(self.tx, "root_child_seq"))?;
            self.sql(schema::set_meta(self.tx, "root_child_seq", n + 1))?;
            n
        } else {
            let n: i64 = self.sql(self.tx.query_row(
                "SELECT child_seq FROM nodes WHERE path = ?1",
                [parent.as_str()],
                |r| r.get(0),
            ))?;
            self.sql(self.tx.execute(
                "UPDATE nodes SET child_seq = ?1 WHERE path = ?2",
                params![n + 1, parent.as_str()],
            ))?;
            n
        };
        Ok(sequence as u64)
    }

    fn apply(&mut self, op: &Op, session: i64) -> Result<OpResult> {
        match op {
            Op::Check { path, version } => match self.stat(path)? {
                None => Err(Error::not_found(path)),
                Some(s) if s.version != *version => Err(Error::bad_version(path, *version)),
                Some(_) => Ok(OpResult::Checked),
            },
            Op::Create { path, data, mode } => {
                for ancestor in path.ancestors() {
                    match self.stat(&ancestor)? {
                        Some(s) if s.ephemeral_owner.is_some() => {
                            return Err(Error::invalid(format!(
                                "{ancestor} is ephemeral and cannot have children"
                            )))
                        }
                        Some(_) => {}
                        None => self.insert(&ancestor, &[], None)?,
                    }
                }
                let name = if mode.is_sequential() {
                    let parent = path.parent().unwrap_or_else(NodePath::root);
                    let sequence = self.next_sequence(&parent)?;
                    sequential_path(path, sequence)?
                } else {
                    path.clone()
                };
                if self.stat(&name)?.is_some() {
                    return Err(Error::already_exists(&name));
                }
                let owner = if mode.is_ephemeral() {
                    let alive: bool = self.sql(self.tx.query_row(
                        "SELECT EXISTS (SELECT 1 FROM sessions WHERE id = ?1 AND expires_at_ms >= ?2)",
                        params![session, now_ms()],
                        |r| r.get(0),
                    ))?;
                    if !alive {
                        return Err(Error::new(
                            ErrorKind::SessionExpired,
                            "the SQLite session expired",
                        ));
                    }
                    Some(session)
                } else {
                    None
                };
                self.insert(&name, data, owner)?;
                Ok(OpResult::Created(name))
            }
            Op::Set {
                path,
                data,
                expected_version,
            } => {
                let Some(stat) = self.stat(path)? else {
                    return Err(Error::not_found(path));
                };
                check_expected_version(path, stat.version, *expected_version)?;
                let updated = self.tx.execute(
                    "UPDATE nodes SET data = ?1, version = version + 1, modified_rev = ?2 WHERE path = ?3",
                    params![data, self.revision, path.as_str()],
                );
                self.sql(updated)?;
                self.log(path, DATA_CHANGED)?;
                Ok(OpResult::Set(Stat {
                    version: stat.version + 1,
                    modified_revision: self.revision as u64,
                    ..stat
                }))
            }
            Op::Delete {
                path,
                expected_version,
            } => {
                let Some(stat) = self.stat(path)? else {
                    return Err(Error::not_found(path));
                };
                check_expected_version(path, stat.version, *expected_version)?;
                let has_children: bool = self.sql(self.tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM nodes WHERE parent = ?1)",
                    [path.as_str()],
                    |r| r.get(0),
                ))?;
                if has_children {
                    return Err(Error::not_empty(path));
                }
                self.sql(
                    self.tx
                        .execute("DELETE FROM nodes WHERE path = ?1", [path.as_str()]),
                )?;
                self.log(path, DELETED)?;
                Ok(OpResult::Deleted)
            }
        }
    }

    /// Records the new revision and trims the log; whether anything changed.
    fn finish(self) -> Result<bool> {
        if self.changed {
            advance_revision(self.tx, self.shared, self.revision)?;
        }
        Ok(self.changed)
    }
}

/// Makes `revision` current and trims the change log to the retention.
fn advance_revision(conn: &Connection, shared: &Shared, revision: i64) -> Result<()> {
    let sql = |r: rusqlite::Result<()>| r.map_err(|e| from_sqlite(e, shared.path()));
    sql(schema::set_meta(conn, "revision", revision))?;
    let keep_from = revision - shared.config.log_retention as i64;
    if keep_from > 0 && keep_from % 64 == 0 {
        // Trimming every 64 revisions keeps writes cheap.
        sql(conn
            .execute("DELETE FROM changes WHERE rev <= ?1", [keep_from])
            .map(drop))?;
        sql(schema::set_meta(conn, "trimmed_through", keep_from))?;
    }
    Ok(())
}

/// Deletes sessions whose expiry `is_dead` accepts, with their ephemeral
/// nodes, as one new revision. Returns whether any node went away.
pub(crate) fn reap_sessions(
    conn: &Connection,
    shared: &Shared,
    is_dead: impl Fn(i64) -> bool,
) -> Result<bool> {
    let sql = |e| from_sqlite(e, shared.path());
    let mut statement = conn
        .prepare("SELECT id, expires_at_ms FROM sessions")
        .map_err(sql)?;
    let dead: Vec<i64> = statement
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .map_err(sql)?
        .filter_map(|row| row.ok())
        .filter(|(_, expires)| is_dead(*expires))
        .map(|(id, _)| id)
        .collect();
    if dead.is_empty() {
        return Ok(false);
    }
    let revision = schema::meta(conn, "revision").map_err(sql)? + 1;
    let mut removed = false;
    for id in dead {
        let mut owned = conn
            .prepare("SELECT path FROM nodes WHERE owner = ?1")
            .map_err(sql)?;
        let paths: Vec<String> = owned
            .query_map([id], |r| r.get(0))
            .map_err(sql)?
            .filter_map(|r| r.ok())
            .collect();
        for path in paths {
            conn.execute("DELETE FROM nodes WHERE path = ?1", [&path])
                .map_err(sql)?;
            conn.execute(
                "INSERT INTO changes (rev, path, kind) VALUES (?1, ?2, ?3)",
                params![revision, path, DELETED],
            )
            .map_err(sql)?;
            removed = true;
        }
        conn.execute("DELETE FROM sessions WHERE id = ?1", [id])
            .map_err(sql)?;
        tracing::info!(session = id, "reaped an expired SQLite session");
    }
    if removed {
        advance_revision(conn, shared, revision)?;
    }
    Ok(removed)
}

#[async_trait]
impl Coordinator for SqliteCoordinator {
    async fn get(&self, path: &NodePath) -> Result<Node> {
        self.shared.check_readable()?;
        if path.is_root() {
            return Ok(Node {
                data: Vec::new(),
                stat: row_stat(0, 0, 0, None),
            });
        }
        let key = path.as_str().to_owned();
        let found = self
            .shared
            .read(move |conn, shared| {
                conn.query_row(
                    "SELECT data, version, created_rev, modified_rev, owner FROM nodes WHERE path = ?1",
                    [key],
                    |r| Ok(Node { data: r.get(0)?, stat: row_stat(r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?) }),
                )
                .optional()
                .map_err(|e| from_sqlite(e, shared.path()))
            })
            .await?;
        found.ok_or_else(|| Error::not_found(path))
    }

    async fn children(&self, path: &NodePath) -> Result<Vec<String>> {
        self.shared.check_readable()?;
        let key = path.clone();
        let found = self
            .shared
            .read(move |conn, shared| {
                let sql = |e| from_sqlite(e, shared.path());
                let tx = conn.transaction().map_err(sql)?;
                let exists = key.is_root()
                    || tx
                        .query_row(
                            "SELECT EXISTS (SELECT 1 FROM nodes WHERE path = ?1)",
                            [key.as_str()],
                            |r| r.get(0),
                        )
                        .map_err(sql)?;
                if !exists {
                    return Ok(None);
                }
                let mut statement = tx
                    .prepare("SELECT path FROM nodes WHERE parent = ?1")
                    .map_err(sql)?;
                let names = statement
                    .query_map([key.as_str()], |r| r.get::<_, String>(0))
                    .map_err(sql)?
                    .filter_map(|r| r.ok())
                    .map(|p| p.rsplit('/').next().unwrap_or_default().to_owned())
                    .collect::<Vec<_>>();
                Ok(Some(names))
            })
            .await?;
        let mut names = found.ok_or_else(|| Error::not_found(path))?;
        names.sort();
        Ok(names)
    }

    async fn transaction(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        if ops.is_empty() {
            self.shared.check_readable()?;
            return Ok(Vec::new());
        }
        self.apply(ops).await
    }

    async fn watch(&self, path: &NodePath, kind: WatchKind) -> Result<WatchStream> {
        self.shared.check_readable()?;
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
        let session = self.shared.take_session();
        let result = match session {
            Some(session) => {
                self.shared
                    .write(move |conn, shared| end_session(conn, shared, session))
                    .await
            }
            None => Ok(()),
        };
        self.shared.shut_down();
        result
    }
}
