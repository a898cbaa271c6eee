//! Node operations as SQL: reads, and the writer that applies a
//! transaction's operations at one new revision and notifies each change.

use std::collections::HashSet;

use kingpin_api::{
    check_expected_version, sequential_path, Error, ErrorKind, Node, NodePath, Op, OpResult,
    Result, Stat,
};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row, Transaction};

use crate::error::from_pg;

/// What happened to a node, as carried by a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Created,
    DataChanged,
    Deleted,
}

impl ChangeKind {
    pub(crate) fn code(self) -> char {
        match self {
            ChangeKind::Created => 'c',
            ChangeKind::DataChanged => 'd',
            ChangeKind::Deleted => 'x',
        }
    }

    pub(crate) fn from_code(code: &str) -> Option<Self> {
        match code {
            "c" => Some(ChangeKind::Created),
            "d" => Some(ChangeKind::DataChanged),
            "x" => Some(ChangeKind::Deleted),
            _ => None,
        }
    }
}

fn row_stat(row: &Row, first: usize) -> Stat {
    let owner: Option<i64> = row.get(first + 3);
    Stat {
        version: row.get::<_, i64>(first) as u64,
        created_revision: row.get::<_, i64>(first + 1) as u64,
        modified_revision: row.get::<_, i64>(first + 2) as u64,
        ephemeral_owner: owner.map(|o| o as u64),
    }
}

/// Reads a node; `None` if absent.
pub(crate) async fn get(client: &Client, schema: &str, path: &str) -> Result<Option<Node>> {
    let row = client
        .query_typed_opt(
            &format!(
                "SELECT data, version, created_rev, modified_rev, owner \
                 FROM {schema}.nodes WHERE path = $1"
            ),
            &[(&path, Type::TEXT)],
        )
        .await
        .map_err(|e| from_pg(e, "reading a node"))?;
    Ok(row.map(|r| Node {
        data: r.get(0),
        stat: row_stat(&r, 1),
    }))
}

/// A node's children names, sorted byte-wise (not by the database's
/// collation); `None` if the node is absent. One statement, one snapshot.
pub(crate) async fn children(
    client: &Client,
    schema: &str,
    path: &NodePath,
) -> Result<Option<Vec<String>>> {
    let row = client
        .query_typed_one(
            &format!(
                "SELECT ($2 OR EXISTS (SELECT 1 FROM {schema}.nodes WHERE path = $1)), \
                 ARRAY(SELECT path FROM {schema}.nodes WHERE parent = $1)"
            ),
            &[(&path.as_str(), Type::TEXT), (&path.is_root(), Type::BOOL)],
        )
        .await
        .map_err(|e| from_pg(e, "listing children"))?;
    if !row.get::<_, bool>(0) {
        return Ok(None);
    }
    let mut names: Vec<String> = row
        .get::<_, Vec<String>>(1)
        .into_iter()
        .map(|p| p.rsplit('/').next().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    Ok(Some(names))
}

/// The database's current revision.
pub(crate) async fn revision(client: &Client, schema: &str) -> Result<i64> {
    let row = client
        .query_typed_one(
            &format!("SELECT revision FROM {schema}.meta WHERE id = 1"),
            &[],
        )
        .await
        .map_err(|e| from_pg(e, "reading the revision"))?;
    Ok(row.get(0))
}

/// Applies operations inside one transaction that holds the meta row, at
/// one new revision.
pub(crate) struct Writer<'a> {
    tx: &'a Transaction<'a>,
    schema: &'a str,
    channel: String,
    revision: i64,
    /// Notifications to send at the end, in order.
    notifications: Vec<String>,
    /// Persistent nodes this transaction has seen exist, so that creating
    /// many nodes under one parent checks the ancestors once.
    persistent: HashSet<NodePath>,
}

impl<'a> Writer<'a> {
    /// Locks the meta row: from here on this transaction is the only writer.
    pub(crate) async fn begin(tx: &'a Transaction<'a>, schema: &'a str) -> Result<Self> {
        let current: i64 = tx
            .query_typed_one(
                &format!("SELECT revision FROM {schema}.meta WHERE id = 1 FOR UPDATE"),
                &[],
            )
            .await
            .map_err(|e| from_pg(e, "locking the revision"))?
            .get(0);
        Ok(Writer {
            tx,
            schema,
            channel: format!("kingpin_{schema}"),
            revision: current + 1,
            notifications: Vec::new(),
            persistent: HashSet::new(),
        })
    }

    async fn stat(&self, path: &NodePath) -> Result<Option<Stat>> {
        let row = self
            .tx
            .query_typed_opt(
                &format!(
                    "SELECT version, created_rev, modified_rev, owner \
                     FROM {}.nodes WHERE path = $1",
                    self.schema
                ),
                &[(&path.as_str(), Type::TEXT)],
            )
            .await
            .map_err(|e| from_pg(e, "reading a node"))?;
        Ok(row.map(|r| row_stat(&r, 0)))
    }

    async fn record(&mut self, path: &NodePath, kind: ChangeKind) -> Result<()> {
        self.notifications
            .push(payload(self.revision, path.as_str(), kind));
        if kind == ChangeKind::Deleted {
            self.persistent.remove(path);
        }
        Ok(())
    }

    async fn insert(&mut self, path: &NodePath, data: &[u8], owner: Option<i64>) -> Result<()> {
        let parent = path.parent().unwrap_or_else(NodePath::root);
        self.tx.execute_typed(
                &format!(
                    "INSERT INTO {}.nodes (path, parent, data, version, created_rev, modified_rev, owner) \
                     VALUES ($1, $2, $3, 0, $4, $4, $5)",
                    self.schema
                ),
                &[(&path.as_str(), Type::TEXT), (&parent.as_str(), Type::TEXT), (&data, Type::BYTEA), (&self.revision, Type::INT8), (&owner, Type::INT8)],
            )
            .await
            .map_err(|e| from_pg(e, "creating a node"))?;
        self.record(path, ChangeKind::Created).await
    }

    /// Takes the next number of `parent`'s sequence counter.
    async fn next_sequence(&mut self, parent: &NodePath) -> Result<u64> {
        let row = if parent.is_root() {
            self.tx
                .query_typed_one(
                    &format!(
                        "UPDATE {}.meta SET root_child_seq = root_child_seq + 1 \
                         WHERE id = 1 RETURNING root_child_seq - 1",
                        self.schema
                    ),
                    &[],
                )
                .await
        } else {
            self.tx
                .query_typed_one(
                    &format!(
                        "UPDATE {}.nodes SET child_seq = child_seq + 1 \
                         WHERE path = $1 RETURNING child_seq - 1",
                        self.schema
                    ),
                    &[(&parent.as_str(), Type::TEXT)],
                )
                .await
        };
        let n: i64 = row
            .map_err(|e| from_pg(e, "taking a sequence number"))?
            .get(0);
        Ok(n as u64)
    }

    async fn session_alive(&self, session: Option<i64>) -> Result<i64> {
        let expired = || Error::new(ErrorKind::SessionExpired, "the PostgreSQL session expired");
        let session = session.ok_or_else(expired)?;
        let alive: bool = self
            .tx
            .query_typed_one(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {}.sessions WHERE id = $1 AND expires_at >= now())",
                    self.schema
                ),
                &[(&session, Type::INT8)],
            )
            .await
            .map_err(|e| from_pg(e, "checking the session"))?
            .get(0);
        if alive {
            Ok(session)
        } else {
            Err(expired())
        }
    }

    /// Applies one operation; `session` owns ephemeral nodes.
    pub(crate) async fn apply(&mut self, op: &Op, session: Option<i64>) -> Result<OpResult> {
        match op {
            Op::Check { path, version } => match self.stat(path).await? {
                None => Err(Error::not_found(path)),
                Some(s) if s.version != *version => Err(Error::bad_version(path, *version)),
                Some(_) => Ok(OpResult::Checked),
            },
            Op::Create { path, data, mode } => {
                for ancestor in path.ancestors() {
                    if self.persistent.contains(&ancestor) {
                        continue;
                    }
                    match self.stat(&ancestor).await? {
                        Some(s) if s.ephemeral_owner.is_some() => {
                            return Err(Error::invalid(format!(
                                "{ancestor} is ephemeral and cannot have children"
                            )))
                        }
                        Some(_) => {}
                        None => self.insert(&ancestor, &[], None).await?,
                    }
                    self.persistent.insert(ancestor);
                }
                let name = if mode.is_sequential() {
                    let parent = path.parent().unwrap_or_else(NodePath::root);
                    sequential_path(path, self.next_sequence(&parent).await?)?
                } else {
                    path.clone()
                };
                if self.stat(&name).await?.is_some() {
                    return Err(Error::already_exists(&name));
                }
                let owner = if mode.is_ephemeral() {
                    Some(self.session_alive(session).await?)
                } else {
                    None
                };
                self.insert(&name, data, owner).await?;
                Ok(OpResult::Created(name))
            }
            Op::Set {
                path,
                data,
                expected_version,
            } => {
                let Some(stat) = self.stat(path).await? else {
                    return Err(Error::not_found(path));
                };
                check_expected_version(path, stat.version, *expected_version)?;
                self.tx.execute_typed(
                        &format!(
                            "UPDATE {}.nodes SET data = $1, version = version + 1, modified_rev = $2 \
                             WHERE path = $3",
                            self.schema
                        ),
                        &[(&data, Type::BYTEA), (&self.revision, Type::INT8), (&path.as_str(), Type::TEXT)],
                    )
                    .await
                    .map_err(|e| from_pg(e, "setting a node"))?;
                self.record(path, ChangeKind::DataChanged).await?;
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
                let Some(stat) = self.stat(path).await? else {
                    return Err(Error::not_found(path));
                };
                check_expected_version(path, stat.version, *expected_version)?;
                let has_children: bool = self
                    .tx
                    .query_typed_one(
                        &format!(
                            "SELECT EXISTS (SELECT 1 FROM {}.nodes WHERE parent = $1)",
                            self.schema
                        ),
                        &[(&path.as_str(), Type::TEXT)],
                    )
                    .await
                    .map_err(|e| from_pg(e, "listing children"))?
                    .get(0);
                if has_children {
                    return Err(Error::not_empty(path));
                }
                self.tx
                    .execute_typed(
                        &format!("DELETE FROM {}.nodes WHERE path = $1", self.schema),
                        &[(&path.as_str(), Type::TEXT)],
                    )
                    .await
                    .map_err(|e| from_pg(e, "deleting a node"))?;
                self.record(path, ChangeKind::Deleted).await?;
                Ok(OpResult::Deleted)
            }
        }
    }

    /// Makes the revision current and queues the notifications, if
    /// anything changed; returns how many changes there were.
    pub(crate) async fn finish(self) -> Result<usize> {
        if !self.notifications.is_empty() {
            set_revision(self.tx, self.schema, self.revision).await?;
            notify(self.tx, &self.channel, &self.notifications).await?;
        }
        Ok(self.notifications.len())
    }
}

async fn set_revision(tx: &Transaction<'_>, schema: &str, revision: i64) -> Result<()> {
    tx.execute_typed(
        &format!("UPDATE {schema}.meta SET revision = $1 WHERE id = 1"),
        &[(&revision, Type::INT8)],
    )
    .await
    .map_err(|e| from_pg(e, "advancing the revision"))
    .map(drop)
}

/// A notification's text: `"<revision> <kind> <path>"`.
fn payload(revision: i64, path: &str, kind: ChangeKind) -> String {
    format!("{revision} {} {path}", kind.code())
}

/// Queues notifications, in order, in one statement. They are delivered to
/// listeners at commit, in commit order, which the meta lock makes
/// revision order.
async fn notify(tx: &Transaction<'_>, channel: &str, payloads: &[String]) -> Result<()> {
    tx.execute_typed(
        "SELECT pg_notify($1, payload) FROM unnest($2::text[]) WITH ORDINALITY AS n(payload, i) \
         ORDER BY i",
        &[(&channel, Type::TEXT), (&payloads, Type::TEXT_ARRAY)],
    )
    .await
    .map_err(|e| from_pg(e, "notifying changes"))
    .map(drop)
}

/// Deletes every session that ran out, with its ephemeral nodes, at
/// `revision`; the caller holds the meta row. Returns how many nodes went.
pub(crate) async fn reap_sessions(
    tx: &Transaction<'_>,
    schema: &str,
    revision: i64,
) -> Result<usize> {
    let dead: Vec<i64> = tx
        .query_typed(
            &format!("DELETE FROM {schema}.sessions WHERE expires_at < now() RETURNING id"),
            &[],
        )
        .await
        .map_err(|e| from_pg(e, "reaping sessions"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if dead.is_empty() {
        return Ok(0);
    }
    let removed = tx
        .query_typed(
            &format!("DELETE FROM {schema}.nodes WHERE owner = ANY($1) RETURNING path"),
            &[(&dead, Type::INT8_ARRAY)],
        )
        .await
        .map_err(|e| from_pg(e, "reaping ephemeral nodes"))?;
    let payloads: Vec<String> = removed
        .iter()
        .map(|row| payload(revision, row.get(0), ChangeKind::Deleted))
        .collect();
    if !payloads.is_empty() {
        set_revision(tx, schema, revision).await?;
        notify(tx, &format!("kingpin_{schema}"), &payloads).await?;
    }
    tracing::info!(sessions = ?dead, nodes = removed.len(), "reaped expired PostgreSQL sessions");
    Ok(removed.len())
}
