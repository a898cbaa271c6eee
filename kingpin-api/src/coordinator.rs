//! The `Coordinator` trait: a hierarchical namespace of small nodes with
//! sessions, compare-and-set, transactions and lossless watches.

use std::fmt::Debug;
use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;

use crate::error::{Error, ErrorKind, Result};
use crate::path::NodePath;

/// Default limit on a node's data: ZooKeeper's packet limit (`jute.maxbuffer`,
/// 1 MiB) less room for the request around it. Every backend enforces the
/// same limit so that data accepted by one is accepted by all.
pub const DEFAULT_MAX_DATA_SIZE: usize = 1_000_000;

/// Width of the counter appended to sequential node names.
pub const SEQUENCE_DIGITS: usize = 10;

/// How a node lives and is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CreateMode {
    /// Lives until deleted.
    Persistent,
    /// Lives until deleted; a 10-digit counter is appended to the name.
    PersistentSequential,
    /// Lives as long as the creating session.
    Ephemeral,
    /// Lives as long as the creating session; a counter is appended.
    EphemeralSequential,
}

impl CreateMode {
    /// Whether the node goes away with its session.
    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    /// Whether a counter is appended to the name.
    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential | CreateMode::EphemeralSequential
        )
    }
}

/// Metadata of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stat {
    /// Data version: 0 after create, +1 on every `set`. The value
    /// compare-and-set operations check.
    pub version: u64,
    /// Backend revision (zxid, etcd revision) of the create.
    pub created_revision: u64,
    /// Backend revision of the last data change. Comparable only with other
    /// revisions of the same backend.
    pub modified_revision: u64,
    /// The session that owns the node, for ephemeral nodes.
    pub ephemeral_owner: Option<u64>,
}

/// A node's data with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The node's bytes.
    pub data: Vec<u8>,
    /// The node's metadata.
    pub stat: Stat,
}

/// One operation of a [`Coordinator::transaction`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Fails the transaction unless the node is at `version`.
    Check {
        /// Node to check.
        path: NodePath,
        /// Required data version.
        version: u64,
    },
    /// Creates a node, as [`Coordinator::create`].
    Create {
        /// Node to create.
        path: NodePath,
        /// Its data.
        data: Vec<u8>,
        /// Its mode.
        mode: CreateMode,
    },
    /// Sets a node's data, as [`Coordinator::set`].
    Set {
        /// Node to change.
        path: NodePath,
        /// New data.
        data: Vec<u8>,
        /// Required version, or `None` for any.
        expected_version: Option<u64>,
    },
    /// Deletes a node, as [`Coordinator::delete`].
    Delete {
        /// Node to delete.
        path: NodePath,
        /// Required version, or `None` for any.
        expected_version: Option<u64>,
    },
}

impl Op {
    /// The node the operation is about.
    pub fn path(&self) -> &NodePath {
        match self {
            Op::Check { path, .. }
            | Op::Create { path, .. }
            | Op::Set { path, .. }
            | Op::Delete { path, .. } => path,
        }
    }
}

/// The outcome of one operation of a successful transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// The check held.
    Checked,
    /// The node was created, under this path (sequential names included).
    Created(NodePath),
    /// The data was set; the node's new metadata.
    Set(Stat),
    /// The node was deleted.
    Deleted,
}

impl OpResult {
    /// The one result of a one-operation transaction, with the error of a
    /// failed one stripped of its operation index: the form a backend's
    /// single-operation calls return.
    pub fn single(results: Result<Vec<OpResult>>) -> Result<OpResult> {
        let mut results = results.map_err(Error::without_operation_index)?;
        match (results.pop(), results.is_empty()) {
            (Some(result), true) => Ok(result),
            _ => Err(Error::new(
                ErrorKind::Backend,
                "expected exactly one operation result",
            )),
        }
    }

    /// The created path, for a `Create` result.
    pub fn into_created(self) -> Result<NodePath> {
        match self {
            OpResult::Created(path) => Ok(path),
            other => Err(Error::new(
                ErrorKind::Backend,
                format!("expected a create result, got {other:?}"),
            )),
        }
    }

    /// The new metadata, for a `Set` result.
    pub fn into_set(self) -> Result<Stat> {
        match self {
            OpResult::Set(stat) => Ok(stat),
            other => Err(Error::new(
                ErrorKind::Backend,
                format!("expected a set result, got {other:?}"),
            )),
        }
    }
}

/// What a watch follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchKind {
    /// The node itself: its creation, data changes and deletion.
    Data,
    /// The node's set of children: a child created or deleted; also the
    /// node's own creation and deletion.
    Children,
}

/// A notification from a watch. Events say *that* something changed; the
/// consumer reads the current state to learn *what*. Several changes in
/// quick succession may arrive as one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WatchEvent {
    /// The node was created, its data changed (`Data`), or its children
    /// changed (`Children`).
    Changed,
    /// The node was deleted.
    Deleted,
    /// The backend cannot prove that nothing was missed (reconnect, session
    /// expiry, etcd compaction, a lagging consumer): re-read everything.
    Resync,
}

/// The stream a watch yields. It ends only when the coordinator is closed.
pub type WatchStream = Pin<Box<dyn Stream<Item = WatchEvent> + Send>>;

/// A change of the client's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A session was established (the first one, or a new one after expiry).
    Connected,
    /// The connection was lost; the session may still be alive.
    Suspended,
    /// The connection came back within the session's lifetime: ephemeral
    /// nodes are intact.
    Reconnected,
    /// The session is gone, and its ephemeral nodes with it. A `Connected`
    /// for a new session follows; owners re-create their ephemeral nodes.
    Expired,
}

/// The stream of session events.
pub type SessionEvents = Pin<Box<dyn Stream<Item = SessionEvent> + Send>>;

/// The client's current session state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Connected, with a live session.
    Connected,
    /// Disconnected; the session may still be alive.
    Suspended,
    /// The session expired and a new one is not established yet.
    Expired,
    /// [`Coordinator::close`] was called.
    Closed,
}

/// What a backend can and cannot do, so callers and the conformance suite can
/// ask instead of guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Session-bound nodes.
    pub ephemeral_nodes: bool,
    /// Counter-suffixed node names.
    pub sequential_nodes: bool,
    /// All-or-nothing multi-operation transactions.
    pub transactions: bool,
    /// Watches on data and children.
    pub watches: bool,
    /// Several processes (or hosts) can share the namespace.
    pub shared_between_processes: bool,
    /// Largest node payload accepted, in bytes.
    pub max_data_size: usize,
}

impl Capabilities {
    /// Everything supported, with the default size limit.
    pub const fn full() -> Self {
        Capabilities {
            ephemeral_nodes: true,
            sequential_nodes: true,
            transactions: true,
            watches: true,
            shared_between_processes: true,
            max_data_size: DEFAULT_MAX_DATA_SIZE,
        }
    }

    /// This set with a different payload limit.
    pub const fn with_max_data_size(mut self, max_data_size: usize) -> Self {
        self.max_data_size = max_data_size;
        self
    }

    /// This set marked as confined to one process.
    pub const fn single_process(mut self) -> Self {
        self.shared_between_processes = false;
        self
    }

    /// This set without session-bound nodes: `create` in an ephemeral mode
    /// is `Unsupported`.
    pub const fn without_ephemeral_nodes(mut self) -> Self {
        self.ephemeral_nodes = false;
        self
    }

    /// This set without counter-suffixed names: `create` in a sequential
    /// mode is `Unsupported`.
    pub const fn without_sequential_nodes(mut self) -> Self {
        self.sequential_nodes = false;
        self
    }

    /// This set without transactions: `transaction` is `Unsupported`, and
    /// the backend implements `create`, `set` and `delete` itself instead of
    /// the defaults, which run one-operation transactions.
    pub const fn without_transactions(mut self) -> Self {
        self.transactions = false;
        self
    }

    /// This set without watches: `watch` is `Unsupported`.
    pub const fn without_watches(mut self) -> Self {
        self.watches = false;
        self
    }
}

/// A hierarchical namespace of small nodes: ZooKeeper's model, which etcd and
/// SQLite emulate under a key prefix.
///
/// One `Coordinator` value is one client session. Clones of an
/// `Arc<dyn Coordinator>` share it.
///
/// # Contract
///
/// * **Paths** are [`NodePath`]s, validated before any call, so a malformed
///   path never reaches a backend.
/// * **Size**: data over [`Capabilities::max_data_size`] is refused with
///   `TooLarge` before any I/O.
/// * **Errors** carry an [`ErrorKind`](crate::ErrorKind). Network loss is
///   `Unavailable`; an operation caught by session expiry is
///   `SessionExpired`. Both are [`retryable`](crate::Error::is_retryable).
///   No backend panics on a server error or network loss.
/// * **Sessions**: a coordinator keeps its session alive (ZooKeeper session,
///   etcd lease with keep-alive, SQLite session row with heartbeat). After
///   the session expires it builds a new one by itself and reports
///   `Expired` then `Connected` on [`session_events`](Self::session_events).
/// * **Watches** never silently lose a change: see [`watch`](Self::watch).
#[async_trait]
pub trait Coordinator: Send + Sync + Debug {
    /// Creates a node and returns its path, which for sequential modes ends
    /// with a 10-digit counter, monotonic within the parent.
    ///
    /// Missing parents are created as empty persistent nodes.
    ///
    /// Errors: `AlreadyExists` if the node exists; `TooLarge`;
    /// `InvalidArgument` for the root or for a child of an ephemeral node.
    ///
    /// The default runs a one-operation [`transaction`](Self::transaction);
    /// backends with a cheaper native call override it, as for `set` and
    /// `delete`.
    async fn create(&self, path: &NodePath, data: &[u8], mode: CreateMode) -> Result<NodePath> {
        let op = Op::Create {
            path: path.clone(),
            data: data.to_vec(),
            mode,
        };
        OpResult::single(self.transaction(vec![op]).await)?.into_created()
    }

    /// Reads a node's data and metadata. `NotFound` if it does not exist.
    ///
    /// A read reflects at least every write this session made and every
    /// change its watches reported; it may miss another session's write
    /// acknowledged moments ago where the backend serves reads from the
    /// member the session is connected to (ZooKeeper). Call
    /// [`sync`](Self::sync) first to see those too.
    async fn get(&self, path: &NodePath) -> Result<Node>;

    /// Brings this session up to date with the cluster, so that its reads
    /// of `path` after the call reflect every write acknowledged (to any
    /// session) before it. `path` need not exist.
    ///
    /// The default does nothing, which is right for backends whose reads
    /// are linearizable already (etcd's default reads, a single database);
    /// ZooKeeper, whose followers serve reads and may lag the leader,
    /// overrides it.
    async fn sync(&self, path: &NodePath) -> Result<()> {
        let _ = path;
        Ok(())
    }

    /// A node's metadata, or `None` if it does not exist. The default reads
    /// the node; backends with a cheaper check override it.
    async fn exists(&self, path: &NodePath) -> Result<Option<Stat>> {
        match self.get(path).await {
            Ok(node) => Ok(Some(node.stat)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces a node's data. With `Some(version)`, only if the node is at
    /// that version (compare-and-set); a stale version is `BadVersion`,
    /// never a silent overwrite. Returns the new metadata.
    ///
    /// Errors: `NotFound`, `BadVersion`, `TooLarge`.
    async fn set(
        &self,
        path: &NodePath,
        data: &[u8],
        expected_version: Option<u64>,
    ) -> Result<Stat> {
        let op = Op::Set {
            path: path.clone(),
            data: data.to_vec(),
            expected_version,
        };
        OpResult::single(self.transaction(vec![op]).await)?.into_set()
    }

    /// Deletes a node, only if at `expected_version` when given.
    ///
    /// Errors: `NotFound`, `BadVersion`, `NotEmpty` if it has children.
    async fn delete(&self, path: &NodePath, expected_version: Option<u64>) -> Result<()> {
        let op = Op::Delete {
            path: path.clone(),
            expected_version,
        };
        OpResult::single(self.transaction(vec![op]).await).map(drop)
    }

    /// Names (not paths) of the node's direct children, sorted.
    /// `NotFound` if the node does not exist.
    async fn children(&self, path: &NodePath) -> Result<Vec<String>>;

    /// Applies `ops` in order, all or nothing. Each operation sees the
    /// effects of the ones before it. On failure nothing is applied and the
    /// error's [`operation_index`](crate::Error::operation_index) names the
    /// operation that failed; its kind is what that operation alone would
    /// have returned.
    async fn transaction(&self, ops: Vec<Op>) -> Result<Vec<OpResult>>;

    /// Follows a node (it need not exist yet).
    ///
    /// Every change made after this call returns is reported: as `Changed`
    /// or `Deleted`, or, when the backend cannot prove that nothing was
    /// missed (reconnect, session expiry, etcd compaction), as `Resync`, on
    /// which the consumer re-reads. Watches outlive reconnects and session
    /// expiry. The stream ends when the coordinator is closed.
    async fn watch(&self, path: &NodePath, kind: WatchKind) -> Result<WatchStream>;

    /// Session events from now on.
    fn session_events(&self) -> SessionEvents;

    /// The session's current state.
    fn session_state(&self) -> SessionState;

    /// The session's identifier (ZooKeeper session id, etcd lease id),
    /// the value found in [`Stat::ephemeral_owner`].
    fn session_id(&self) -> Option<u64>;

    /// What this backend supports.
    fn capabilities(&self) -> Capabilities;

    /// Ends the session: its ephemeral nodes go away and watch streams end.
    /// Calls after `close` fail with `Unavailable`.
    async fn close(&self) -> Result<()>;
}

/// The name a sequential create gets: the requested name plus a 10-digit
/// counter.
pub fn sequential_path(path: &NodePath, sequence: u64) -> Result<NodePath> {
    NodePath::parse(&format!(
        "{}{:0width$}",
        path.as_str(),
        sequence,
        width = SEQUENCE_DIGITS
    ))
}

/// `BadVersion` unless `expected` is `None` or equals the node's `actual`
/// version: the compare in compare-and-set, for backends that decide it
/// themselves.
pub fn check_expected_version(path: &NodePath, actual: u64, expected: Option<u64>) -> Result<()> {
    match expected {
        Some(v) if v != actual => Err(Error::bad_version(path, v)),
        _ => Ok(()),
    }
}

/// Refuses data over `limit` bytes with `TooLarge`.
pub fn check_data_size(path: &NodePath, data: &[u8], limit: usize) -> Result<()> {
    if data.len() > limit {
        return Err(Error::too_large(path, data.len(), limit));
    }
    Ok(())
}
